"""The jobs layer: Job, waiting, the watcher thread, the journal and the webhook receiver."""

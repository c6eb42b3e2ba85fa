"""The contract layer: the API's nouns and rules (models, errors, validation, polling), no I/O."""

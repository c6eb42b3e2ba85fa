"""The api layer: :class:`~luma_nb.api.client.LumaClient`, the one place that speaks HTTP."""

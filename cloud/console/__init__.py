"""The operator console: a pure snapshot core (`snapshot`), its shell that gathers the inputs (`feed`) and the
page, stream and JSON endpoints (`routes`)."""

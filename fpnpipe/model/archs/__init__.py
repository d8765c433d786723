"""One module per registered architecture (fpnpipe.model.registry): each defines `build` and `DESCRIPTION`."""

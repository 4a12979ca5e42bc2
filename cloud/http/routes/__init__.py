"""One module per resource; each exports `routes(services) -> [(path, endpoint, methods)]`."""

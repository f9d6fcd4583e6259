"""Built-in AnNinh Hub plugins: one folder each, with a manifest.json, hooks, driver, simulator."""

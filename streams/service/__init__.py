"""The service core: batch pipeline, sink, Faust agents, health and the app's wiring."""

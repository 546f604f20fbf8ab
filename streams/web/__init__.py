"""The worker's HTTP views: health, metrics and the product-health API."""

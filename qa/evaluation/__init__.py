"""Measuring the product: metrics, the question set runner, benchmarks and the HTML report."""

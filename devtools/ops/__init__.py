"""Operating a deployed stage: the dead-letter queue, the URL and GTM kit, an end-to-end
check. `python -m devtools.ops`. Never imports the local stack."""

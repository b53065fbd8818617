"""Operating a deployed stage: the dead-letter queue, the URL and GTM kit, an end-to-end
check. `.venv/bin/python -m devtools.ops`. Never imports the local stack."""

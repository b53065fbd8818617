"""Deploying a stage: settings, pre-flight checks, IAM policies, the merge template, and the
`chalice deploy` and CloudFormation paths. Never imports the local stack."""

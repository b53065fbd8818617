"""The local stack: the whole pipeline on loopback (`make dev`), with a dry run of each
destination and the demo page. Development tooling only: never packaged into Lambda."""

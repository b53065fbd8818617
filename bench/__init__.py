"""pixel-relay's benchmark suite: `python -m bench` (see docs/performance.md).

Every figure is a ratio or a count against a baseline measured in the same run, so the
numbers mean the same on a laptop, a CI runner or a shared machine. Development tooling only:
never packaged into Lambda, never reaches AWS (fake credentials, loopback servers, in-process
answers).
"""

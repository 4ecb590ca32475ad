"""The application shell: the composition root, the CLI, the demo, the benches, the doctor
and the installer. The only place that imports every package.
"""

"""Notebook kernels that run in the project's runtime.

`aero export-notebook-env` (`aeromancy/kernelspec.py`) installs the kernelspec;
this package holds what each kind of kernel needs:

- `host.py`: a virtual environment built from the lock file, layered on the
  Python that runs Aeromancy (the kernel reads data in-process, through DVC);
- `container.py`: a kernel image, one layer on the runtime image with
  ipykernel and Aeromancy's own pure-Python package;
- `nixenv.py`: the Nix dev shell's environment and its `python3`;
- `launch.py`: what Jupyter starts for a container or Nix kernel, on the host:
  the data broker, then the kernel inside the runtime, until it ends;
- `inside.py`: the kernel's process inside the runtime: ipykernel, ended
  when the launcher is gone;
- `broker.py`: how a kernel inside a runtime reads pinned data. The runtime
  holds the project's packages, not DVC, and the remote's credentials stay on
  the host, so the kernel asks the launcher, which reads the data into the
  DVC cache (mounted at the same path) and answers with the files' paths;
- `client.py`: the copy of Aeromancy's package a kernel inside a runtime
  imports.
"""

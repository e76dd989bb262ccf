"""Build the operator's OCI image without a Docker engine (`make image`).

`debian.py` makes the base layer (Debian 12's python3.11 and the libraries it loads);
`build.py` adds the operator's locked wheels in a virtualenv and writes an OCI archive.
"""

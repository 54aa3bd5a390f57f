"""Builds the compiled core (sidecar/core/*.pyx) with Cython; everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("sidecar.core._wire", ["sidecar/core/_wire.pyx"], extra_compile_args=["-O2"]),
            Extension("sidecar.core._ndjson", ["sidecar/core/_ndjson.pyx"], extra_compile_args=["-O2"]),
            Extension("sidecar.core._event_merge", ["sidecar/core/_event_merge.pyx"], extra_compile_args=["-O2"]),
        ],
        compiler_directives={"language_level": 3},
    )
)

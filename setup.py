"""Builds the compiled core (sidecar/core/*.pyx) with Cython; everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(f"sidecar.core.{name}", [f"sidecar/core/{name}.pyx"], extra_compile_args=["-O2"])
            for name in ("_wire", "_ndjson", "_event_merge", "_trigrams")
        ],
        compiler_directives={"language_level": 3},
    )
)

"""The C extension; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "microstatedb._speedups",
            ["src/microstatedb/_speedups.c"],
            depends=["src/microstatedb/_blake3.h"],
            extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
            # No compiler: install anyway, and the Python write path runs (same bytes).
            optional=True,
        )
    ]
)

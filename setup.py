"""The C extensions; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# No compiler: install anyway, and the Python write path and commit run (same bytes).
_FLAGS = ["-Wall", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension(
            "microstatedb._speedups",
            ["src/microstatedb/_speedups.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "microstatedb._frames",
            ["src/microstatedb/_frames.c"],
            depends=["src/microstatedb/_blake3.h"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ]
)

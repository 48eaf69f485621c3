"""The C extension; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "microstatedb._speedups",
            ["src/microstatedb/_speedups.c"],
            extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
            # No compiler: install anyway, and the Python write path runs (same bytes).
            optional=True,
        )
    ]
)

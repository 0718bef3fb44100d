"""Build the one C extension (dynapot._fastpath, the sensor's receive thread); the rest is pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dynapot._fastpath",
            sources=["src/dynapot/_fastpath.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
            libraries=["pthread", "m"],
        )
    ]
)

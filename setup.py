"""Balsam: a workflow and ensemble job manager for HPC centres."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent

setup(
    name="balsam",
    version="0.4.0.dev0",
    description="Workflow and ensemble job manager for HPC centres",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["balsam", "balsam.*"]),
    py_modules=["user_settings"],
    include_package_data=True,
    package_data={"balsam": ["service/templates/*.sh", "web/templates/*.html", "web/templates/balsam_web/*.html",
                             "web/static/balsam_web/*"]},
    install_requires=[
        "Django>=5.2,<5.3",
        "pyzmq>=25",
        "click>=8.2,<9",
        "psutil>=5.9",
        "filelock>=3.12",
        "waitress>=3.0",
        "whitenoise>=6.6",
        "matplotlib>=3.8",
        "psycopg[binary]>=3.1",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.2", "playwright>=1.40"],
    },
    entry_points={"console_scripts": ["balsam=balsam.cli.main:main"]},
    # Sourced, not run: `. balsamactivate PATH-or-NAME` (they change the calling shell).
    scripts=["scripts/balsamactivate", "scripts/balsamdeactivate"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Django :: 5.2",
        "Topic :: System :: Distributed Computing",
    ],
)

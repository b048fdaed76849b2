from setuptools import find_packages, setup

requires = [
    "pyramid>=2.0",
    # pyramid 2.1 imports pkg_resources, which newer setuptools releases drop.
    "setuptools<81",
    "waitress",
    "colander>=2.0",
    "ZODB>=6",
    "zodburi",
    "pyramid_zodbconn",
    "pyramid_tm",
    "pyramid_retry",
    "transaction",
    "BTrees",
    "Jinja2>=3.1",
    "PyYAML",
    "ansible-runner>=2.4",
    "ansible-core>=2.16",
    "ZEO",
    # RelStorage on PostgreSQL (postgres:// zodburi URIs, its resolver). Its
    # `postgresql` extra pulls psycopg2, a source package that compiles
    # against libpq (pg_config, libpq-dev); psycopg2-binary is the same
    # module as a wheel with libpq inside, so it installs without a compiler.
    "RelStorage>=4",
    "psycopg2-binary",
    # JSON responses: about 50 times faster than json.dumps (API reads, bench/)
    "orjson",
    # Secrets sealed at rest with AES-GCM, and SSH private keys read and
    # fingerprinted (sealing.py, models/credential.py)
    "cryptography",
    # what cryptography needs to open passphrase-protected OpenSSH keys
    "bcrypt",
    # GET /metrics in the Prometheus text format (metrics.py)
    "prometheus-client",
    # option patterns of service specs, matched in linear time (catalog/schema.py)
    "google-re2",
]

tests_require = [
    "WebTest",
    # pytest 9.2 ignores item._nodeid, where pytest-xdist 3.8 (the newest)
    # marks --dist loadgroup's groups, and schemathesis reads it too.
    "pytest<9.2",
    "pytest-xdist",
    "hypothesis",
    "schemathesis>=4",
    "ansible-lint",
    # tests/browser: the status page in headless Chromium (Debian's chromium
    # and chromium-driver; the tests skip without them)
    "selenium",
]

setup(
    name="provisioner",
    version="0.1.0",
    description="Provision clusters from a service catalog and run jobs on them, through Ansible",
    # bench/ runs from a checkout only (make bench: python -m bench)
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]),
    # Found through the package, so an install serves its own copies: the
    # status page (page.py), the Ansible project the runs use (ansible.cfg,
    # playbooks, and the roles with their files/, among them the node agent
    # and the job wrapper) and the built-in services (settings.py). Listed
    # here whole, and the wheel and the sdist take exactly these:
    # include_package_data would also take whatever a manifest names, and
    # warns that these directories look like packages.
    package_data={"pyramid_app": ["static/*", "ansible/ansible.cfg", "ansible/playbooks/*.yml",
                                  "ansible/roles/**/*", "service_templates/**/*"]},
    zip_safe=False,
    python_requires=">=3.10",
    install_requires=requires,
    extras_require={"test": tests_require},
    entry_points={
        "paste.app_factory": ["main = pyramid_app:main"],
        "console_scripts": ["provisioner = pyramid_app.scripts.cli:main"],
    },
)

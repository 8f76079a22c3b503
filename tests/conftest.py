pytest_plugins = [
    "tests.harness.procguard",
    "tests.harness.fixtures_app",
    "tests.harness.fixtures_models",
    "tests.harness.fixtures_hub",
    "tests.harness.fixtures_downloads",
    "tests.harness.fixtures_smollm2",
]

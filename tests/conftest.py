"""Shared pytest fixtures. Each area keeps its fixtures in its own module, loaded here as plugins."""

pytest_plugins = [
    "tests.fixtures_study",        # synthetic MIMIC corpus -> prepared + sampled studies (session-scoped)
    "tests.fixtures_labelstudio",  # a real Label Studio server on 127.0.0.1 (session-scoped)
    "tests.fixtures_browser",      # headless Debian Chromium through Playwright
    "tests.fixtures_mimic4",       # synthetic MIMIC-IV corpus -> prepared + sampled ICD-10 study (session-scoped)
]

#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/test_page_browser.py) when it is missing.
# Playwright drives it from Python (installed with the dev extra); no browser is downloaded.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing chromium (apt-get) for the browser tests"
$SUDO apt-get update -qq
# fonts-liberation: readable text in screenshots without the browser's other recommendations
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version

#!/usr/bin/env bash
# The web UI's browser tests drive the system Chromium (Debian's chromium package) with Playwright;
# install it where we can (root with apt-get). Elsewhere those tests are skipped and say why.
set -u
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null; then echo "chromium: $(command -v "$candidate")"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: installing Debian's chromium package for the browser tests"
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    echo "chromium: $(command -v chromium)"; exit 0
  fi
fi
echo "chromium: not available here; the browser tests will be skipped (install chromium to run them)"
exit 0

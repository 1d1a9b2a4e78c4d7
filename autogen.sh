#!/bin/sh
# SPDX-License-Identifier: ISC
# Regenerate the autotools build files after a fresh checkout.
set -e
cd "$(dirname "$0")"
autoreconf --install --force

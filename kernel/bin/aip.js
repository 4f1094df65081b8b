#!/usr/bin/env node
// Thin launcher so the `aip` bin link exists before the first build.
import '../dist/cli/main.js';

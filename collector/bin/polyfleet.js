#!/usr/bin/env node
import { runPolyfleetCli } from "../dist/cli/polyfleet.js";

process.exitCode = await runPolyfleetCli(process.argv.slice(2));

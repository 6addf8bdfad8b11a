#!/usr/bin/env node
import { main, stopOnSignals } from "../dist/main.js";

const collector = await main();
if (collector) stopOnSignals(() => collector.stop());

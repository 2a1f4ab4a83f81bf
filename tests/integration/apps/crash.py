"""crash.py -- a function that fails at start: says why on stderr and exits 1 (like a missing setting)."""
import sys

print("crash: starting up", flush=True)
sys.stderr.write("crash: CONFIG_URL is not set, cannot start\n")
sys.stderr.flush()
sys.exit(1)

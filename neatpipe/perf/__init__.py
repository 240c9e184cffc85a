"""Speed benchmarks behind ``neatpipe bench``: each prints a table measured in one run."""

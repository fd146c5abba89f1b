"""The `rlip` command line: one module per command group, each with `register(app)`.

Holds only parsing, rendering and exit codes; the work is in the library. May import every other
package (it is the top of the dependency order), lazily where torch would load for `--help`.
"""

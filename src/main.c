/* main.c -- flint's entry point: `serve` runs the daemon, every other verb is
 * the command-line client. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "control/control.h"

int main(int argc, char **argv)
{
	int r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fl_cli_usage();
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return fl_serve_main(argc - 1, argv + 1);
	r = fl_cli_main(argc - 1, argv + 1);
	if (r == -1) {
		fprintf(stderr, "flint: unknown command '%s' (see flint --help)\n", argv[1]);
		return 2;
	}
	return r;
}

/* cli.h -- the flint command-line client: every verb but `serve`. */
#ifndef FL_CLI_H
#define FL_CLI_H

/* Runs the verb argv[0] ("deploy", "ls", ...) with its arguments. Returns the
 * process exit status: 0 ok, 1 the operation failed, 2 bad usage. Returns -1 if
 * argv[0] is not a CLI verb. */
int fl_cli_main(int argc, char **argv);

/* Prints the list of verbs (for `flint --help`). */
void fl_cli_usage(void);

#endif

/* control.h -- `flint serve`: the control thread and the daemon's life cycle. */
#ifndef FL_CONTROL_H
#define FL_CONTROL_H

/* Runs `flint serve ARGS...` (argv[0] is "serve"); returns the exit status. */
int fl_serve_main(int argc, char **argv);

#endif

#ifndef CLUSTERDNS_CSPAWN_H
#define CLUSTERDNS_CSPAWN_H

#include <sys/types.h>

/// posix_spawn(2) of `path` with `argv` and `envp` (NULL-terminated), the child's standard
/// input, output and error set to `in`, `out` and `err` (-1 keeps the parent's), its working
/// directory `cwd` (NULL keeps the parent's), signals unblocked and at their defaults, and
/// every other descriptor closed in the child whatever its close-on-exec flag says: a child
/// never holds another's pipe or the tests' sockets. 0 and `*pid`, or an errno value.
int cdns_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
               int in, int out, int err, const char *cwd);

#endif

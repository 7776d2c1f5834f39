#ifndef CLUSTERDNS_CYAML_SHIM_H
#define CLUSTERDNS_CYAML_SHIM_H
#include <yaml.h>
#endif

/*
 * settings.h - every setting of the sol program, read in one place from three sources: flags >
 * SOL_* environment > config file > default. Each module owns the struct of its own settings (the
 * node's config.h, the cluster's cluster_config.h, the operator endpoint's ops.h); this fills all
 * three, so that precedence, the error messages and --help are the same for all of them.
 *
 * Each setting has one name used three ways: flag --max-inflight, config key max_inflight (a dash
 * also accepted: max-inflight), environment SOL_MAX_INFLIGHT. The config file is "key value"
 * lines, '#' comments.
 */
#ifndef SOL_SETTINGS_H
#define SOL_SETTINGS_H

#include <stddef.h>

#include "cluster_config.h"
#include "config.h"
#include "ops.h"

struct sol_settings {
    struct sol_config node;        /* the broker's */
    struct cluster_config cluster; /* the cluster's */
    struct ops_config ops;         /* the operators' HTTP endpoint's */
};

/* Outcome of parsing. SETTINGS_EXIT_OK: --help or --version printed, exit 0. */
enum settings_result { SETTINGS_OK = 0, SETTINGS_EXIT_OK = 1, SETTINGS_ERROR = -1 };

/* Fill s with every module's defaults, as a node started without settings has them (cluster_bind
 * and the HTTP address follow the MQTT bind). */
void settings_defaults(struct sol_settings *s);

/* Parse argv, environment (envp-style array, NULL-terminated; pass environ) and the config file
 * (--config, -c or SOL_CONFIG); -p is --port, as in Mosquitto. On error writes one line naming the
 * setting into err (errlen bytes) and returns SETTINGS_ERROR; the caller prints it and exits 2.
 * --help and --version print to stdout and return SETTINGS_EXIT_OK. Also fills each listener's
 * origin (where its port came from) and turns clustering on when seeds or cluster_bind ask for it. */
int settings_load(struct sol_settings *s, int argc, char **argv, char **envp, char *err,
                  size_t errlen);

#endif

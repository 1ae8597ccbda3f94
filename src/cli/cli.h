/*
 * cli.h - the autobot subcommands and the option handling they share.
 * Every subcommand answers --help; exit codes: 0 ok, 1 degraded or
 * failure, 2 down or usage error (health), 64 bad usage.
 */
#ifndef AB_CLI_H
#define AB_CLI_H

#include "config.h"

#include <stdio.h>

#define AB_EXIT_USAGE 64

struct ab_cli_common {
	const char *config;
	const char *state_dir;
	const char *env_file;
	const char *sets[32];
	size_t n_sets;
};

/* Consumes a common option at argv[*i] (--config, --state-dir, --env-file,
 * --set); returns 1 if it did (advancing *i past its value), 0 if argv[*i]
 * is not one, or -1 after printing an error. */
int ab_cli_common_opt(struct ab_cli_common *co, int argc, char **argv, int *i);
/* The help text for the common options. */
extern const char ab_cli_common_help[];
/* Loads the config the options name; prints the error and returns NULL. */
struct ab_config *ab_cli_load_config(const struct ab_cli_common *co);
/* Value of "--name value" or "--name=value" at argv[*i]; NULL if not it. */
const char *ab_cli_opt_value(const char *name, int argc, char **argv, int *i);

/* One option of a subcommand: a flag (sets *flag) or, when value is set,
 * an option taking a value ("--name V" or "--name=V"). */
struct ab_cli_opt {
	const char *name;
	bool *flag;
	const char **value;
};

/*
 * Parses argv[1..] for subcommand cmd: the common options, the table
 * opts (terminated by a {NULL} entry), -h/--help, and up to max_pos
 * positional arguments into pos (*n_pos of them). Returns 0 to go on,
 * 1 when help was printed (exit 0), or -1 after printing a usage error
 * (exit AB_EXIT_USAGE).
 */
int ab_cli_parse(int argc, char **argv, const char *cmd, struct ab_cli_common *co,
		 const struct ab_cli_opt *opts, const char **pos, size_t max_pos, size_t *n_pos,
		 void (*usage)(FILE *f));
/* Parses an integer option value in [min,max]; prints an error naming
 * cmd and opt and returns -1 when it is not one. */
int ab_cli_int(const char *cmd, const char *opt, const char *v, long long min, long long max,
	       long long *out);

/* The models folder (llm.models_dir, else <state_dir>/models) and the
 * Ollama store (llm.ollama_dir, else the default one, or NULL) that model
 * names are looked up in. Caller frees both. */
void ab_cli_model_dirs(const struct ab_config *cfg, char **models_dir, char **ollama_dir);

/* Where autobot.so is: services.redis.module if set, else next to this
 * binary (build tree or installation). out (PATH_MAX bytes) = "" when the
 * config says "none" or none is found; AB_ENOTFOUND when a configured path
 * is not readable. */
int ab_cli_module_path(const struct ab_config *cfg, char *out, size_t len);
/* The API token: $AUTOBOT_TOKEN, else <state_dir>/admin.token. Prints why
 * not on stderr (naming cmd) and returns <0 when there is none. */
int ab_cli_token(const struct ab_config *cfg, const char *cmd, char *out, size_t len);

int ab_cmd_up(int argc, char **argv);
int ab_cmd_kb(int argc, char **argv);
int ab_cmd_ssh_setup(int argc, char **argv);
int ab_cmd_deploy(int argc, char **argv);
int ab_cmd_backup(int argc, char **argv);
int ab_cmd_logs(int argc, char **argv);
int ab_cmd_serve(int argc, char **argv);
int ab_cmd_health(int argc, char **argv);
int ab_cmd_status(int argc, char **argv);
int ab_cmd_config(int argc, char **argv);
int ab_cmd_model(int argc, char **argv);
int ab_cmd_run(int argc, char **argv);
int ab_cmd_chat(int argc, char **argv);

/* A client (one connection) of the config's Redis, with the password from
 * the config or else the secrets file, once its first connection attempt
 * ended or wait_ms passed (the caller sees which through ab_redis_status).
 * NULL only if the client cannot be made. The caller frees it. */
struct ab_redis *ab_cli_redis(struct ab_config *cfg, int connect_ms, int command_ms, int wait_ms);

#endif

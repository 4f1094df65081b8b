/*
 * harden.node: the two things an agent with a shell as the same OS user must
 * not be able to do to a process that holds a database password or an
 * operator session (invariant 8), which Node.js 20 cannot refuse by itself:
 *
 *  - prctl(PR_SET_DUMPABLE, 0): no ptrace attach (gdb -p), no /proc/<pid>/mem,
 *    /environ or core dumps for another process of the same non-root user
 *    (what ssh-agent and gpg-agent do);
 *  - SIGUSR1 ignored: Node opens its inspector (a full debugger on a TCP port)
 *    when it receives SIGUSR1, and `--disable-sigusr1` only exists from
 *    Node 22.14.
 *
 * Plain N-API (stable ABI): the few functions used are declared here, so the
 * addon builds with only a C compiler, without Node's headers or node-gyp.
 */
#include <stddef.h>
#include <signal.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
napi_status napi_create_function(napi_env env, const char *name, size_t length, napi_callback cb, void *data, napi_value *result);
napi_status napi_set_named_property(napi_env env, napi_value object, const char *name, napi_value value);
napi_status napi_get_boolean(napi_env env, int value, napi_value *result);
napi_status napi_create_int32(napi_env env, int value, napi_value *result);

static napi_value boolean(napi_env env, int value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

/* Returns 1 when the process is no longer dumpable, 0 when prctl failed, -1 off Linux. */
static napi_value set_non_dumpable(napi_env env, napi_callback_info info) {
  napi_value result;
  (void)info;
#ifdef __linux__
  napi_create_int32(env, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 1 : 0, &result);
#else
  napi_create_int32(env, -1, &result);
#endif
  return result;
}

/* 1 dumpable, 0 not, -1 unknown (not Linux). */
static napi_value dumpable_state(napi_env env, napi_callback_info info) {
  napi_value result;
  (void)info;
#ifdef __linux__
  napi_create_int32(env, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), &result);
#else
  napi_create_int32(env, -1, &result);
#endif
  return result;
}

/* SIG_IGN replaces Node's inspector trigger; ignored signals stay ignored in children, which is fine. */
static napi_value ignore_sigusr1(napi_env env, napi_callback_info info) {
  struct sigaction action;
  (void)info;
  action.sa_handler = SIG_IGN;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  return boolean(env, sigaction(SIGUSR1, &action, NULL) == 0);
}

static napi_value sigusr1_ignored(napi_env env, napi_callback_info info) {
  struct sigaction current;
  (void)info;
  if (sigaction(SIGUSR1, NULL, &current) != 0) return boolean(env, 0);
  return boolean(env, current.sa_handler == SIG_IGN);
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, (size_t)-1, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  export_function(env, exports, "setNonDumpable", set_non_dumpable);
  export_function(env, exports, "dumpableState", dumpable_state);
  export_function(env, exports, "ignoreSigusr1", ignore_sigusr1);
  export_function(env, exports, "sigusr1Ignored", sigusr1_ignored);
  return exports;
}

/* Marks the module as Node-API so Node loads it without a version check (NAPI_MODULE_INIT's symbol). */
int node_api_module_get_api_version_v1(void) { return 8; }

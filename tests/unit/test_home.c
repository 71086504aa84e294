/* test_home.c — directories from the environment, and the identity key
 * files: created 0600, reloaded identically, unsafe ones refused. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/tr_home.h"
#include "tr_test.h"

static char tmp[256];

/* A fresh temporary TRELLIS_HOME for one case. */
static void fresh_home(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/trellis-home-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        exit(1);
    }
    setenv("TRELLIS_HOME", tmp, 1);
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    if (tmp[0]) nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmp[0] = '\0';
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(path);
        exit(1);
    }
    fchmod(fd, mode);
    close(fd);
}

TR_TEST(trellis_home_respected)
{
    fresh_home();
    tr_home_t *h = NULL;
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    char want[512];
    snprintf(want, sizeof want, "%s/config", tmp);
    TR_CHECK_STR(tr_home_config(h), want);
    snprintf(want, sizeof want, "%s/data", tmp);
    TR_CHECK_STR(tr_home_data(h), want);
    snprintf(want, sizeof want, "%s/state", tmp);
    TR_CHECK_STR(tr_home_state(h), want);
    snprintf(want, sizeof want, "%s/run", tmp);
    TR_CHECK_STR(tr_home_runtime(h), want);
    snprintf(want, sizeof want, "%s/config/identity.key", tmp);
    TR_CHECK_STR(tr_home_key_path(h), want);
    tr_home_destroy(&h);
    TR_CHECK(h == NULL);
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(xdg_directories)
{
    char *saved = getenv("TRELLIS_HOME") ? strdup(getenv("TRELLIS_HOME")) : NULL;
    unsetenv("TRELLIS_HOME");
    setenv("HOME", "/home/ada", 1);
    setenv("XDG_CONFIG_HOME", "/cfg", 1);
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    unsetenv("XDG_STATE_HOME");
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    tr_home_t *h = NULL;
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    TR_CHECK_STR(tr_home_config(h), "/cfg/trellis");
    TR_CHECK_STR(tr_home_data(h), "/home/ada/.local/share/trellis");
    TR_CHECK_STR(tr_home_state(h), "/home/ada/.local/state/trellis");
    TR_CHECK_STR(tr_home_runtime(h), "/run/user/1000/trellis");
    tr_home_destroy(&h);
    unsetenv("XDG_RUNTIME_DIR");
    setenv("TMPDIR", "/var/tmp", 1);
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    char want[64];
    snprintf(want, sizeof want, "/var/tmp/trellis-%u", (unsigned)getuid());
    TR_CHECK_STR(tr_home_runtime(h), want);
    tr_home_destroy(&h);
    unsetenv("TMPDIR");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_DATA_HOME");
    if (saved) setenv("TRELLIS_HOME", saved, 1);
    free(saved);
}

TR_TEST(created_private_and_reloaded)
{
    fresh_home();
    tr_home_t *h = NULL;
    tr_identity_t *a = NULL, *b = NULL;
    bool created = false;
    tr_err_t e = {0};
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    /* without create, no key yet */
    TR_CHECK_INT(tr_home_identity(h, false, &a, NULL, &e), ==, TR_ENOTFOUND);
    TR_CHECK_INT(tr_home_identity(h, true, &a, &created, &e), ==, TR_OK);
    TR_CHECK(created);
    struct stat st;
    TR_CHECK_INT(stat(tr_home_key_path(h), &st), ==, 0);
    TR_CHECK_INT(st.st_mode & 07777, ==, 0600);
    TR_CHECK_INT(stat(tr_home_config(h), &st), ==, 0);
    TR_CHECK_INT(st.st_mode & 07777, ==, 0700);
    TR_CHECK_INT(stat(tr_home_pub_path(h), &st), ==, 0);
    /* reload: same key, not created again */
    TR_CHECK_INT(tr_home_identity(h, true, &b, &created, &e), ==, TR_OK);
    TR_CHECK(!created);
    TR_CHECK_MEM(tr_identity_public(a), tr_identity_public(b), TR_KEY_LEN);
    /* identity.pub holds the peer id */
    FILE *f = fopen(tr_home_pub_path(h), "r");
    char line[128] = "", id[TR_PEER_ID_STRLEN + 1];
    TR_CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    tr_peer_id(id, tr_identity_public(a));
    line[strcspn(line, "\n")] = '\0';
    TR_CHECK_STR(line, id);
    /* no temporary files left behind */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s/config | grep tmp)\"", tmp);
    TR_CHECK_INT(system(cmd), ==, 0);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(unsafe_modes_refused_with_fix)
{
    fresh_home();
    tr_home_t *h = NULL;
    tr_identity_t *id = NULL;
    tr_err_t e = {0};
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_OK);
    tr_identity_destroy(&id);
    static const mode_t bad[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TR_CHECK_INT(chmod(tr_home_key_path(h), bad[i]), ==, 0);
        TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_EPERM);
        TR_CHECK(id == NULL);
        TR_CHECK(strstr(e.msg, tr_home_key_path(h)));
        char fix[600];
        snprintf(fix, sizeof fix, "chmod 600 %s", tr_home_key_path(h));
        TR_CHECK(strstr(e.msg, fix));
    }
    /* 0400 is private: fine */
    TR_CHECK_INT(chmod(tr_home_key_path(h), 0400), ==, 0);
    TR_CHECK_INT(tr_home_identity(h, false, &id, NULL, &e), ==, TR_OK);
    tr_identity_destroy(&id);
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(foreign_owner_refused)
{
    if (geteuid() != 0) TR_SKIP("needs root to give the key file to another user");
    fresh_home();
    tr_home_t *h = NULL;
    tr_identity_t *id = NULL;
    tr_err_t e = {0};
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_OK);
    tr_identity_destroy(&id);
    TR_CHECK_INT(chown(tr_home_key_path(h), 12345, (gid_t)-1), ==, 0);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_EPERM);
    TR_CHECK(strstr(e.msg, "belongs to uid 12345"));
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(symlink_and_garbage_refused)
{
    fresh_home();
    tr_home_t *h = NULL;
    tr_identity_t *id = NULL;
    tr_err_t e = {0};
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_home_mkdir(tr_home_config(h), &e), ==, TR_OK);
    char real[600];
    snprintf(real, sizeof real, "%s/elsewhere.key", tmp);
    write_file(real, "ed25519-seed 00\n", 0600);
    TR_CHECK_INT(symlink(real, tr_home_key_path(h)), ==, 0);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_EPERM);
    TR_CHECK(strstr(e.msg, "symbolic link"));
    unlink(tr_home_key_path(h));

    write_file(tr_home_key_path(h), "ed25519-seed 00\n", 0600);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_EMALFORMED);
    TR_CHECK(strstr(e.msg, "line 1"));
    write_file(tr_home_key_path(h), "# only a comment\n", 0600);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_EMALFORMED);

    /* a well-formed file written by hand loads: comments, CRLF, either case */
    write_file(tr_home_key_path(h),
               "# comment\r\n\r\ned25519-seed "
               "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f\r\n",
               0600);
    TR_CHECK_INT(tr_home_identity(h, false, &id, NULL, &e), ==, TR_OK);
    uint8_t seed[32], want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)i;
    tr_identity_seed(id, seed);
    TR_CHECK_MEM(seed, want, 32);
    tr_identity_destroy(&id);
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(pub_file_checked_and_rewritten)
{
    fresh_home();
    tr_home_t *h = NULL;
    tr_identity_t *id = NULL;
    tr_err_t e = {0};
    TR_CHECK_INT(tr_home_open(&h, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_home_identity(h, true, &id, NULL, &e), ==, TR_OK);
    tr_identity_destroy(&id);
    /* missing: written again */
    TR_CHECK_INT(unlink(tr_home_pub_path(h)), ==, 0);
    TR_CHECK_INT(tr_home_identity(h, false, &id, NULL, &e), ==, TR_OK);
    tr_identity_destroy(&id);
    TR_CHECK_INT(access(tr_home_pub_path(h), R_OK), ==, 0);
    /* someone else's key: refused with the way out */
    write_file(tr_home_pub_path(h),
               "0000000000000000000000000000000000000000000000000000000000000000\n", 0644);
    TR_CHECK_INT(tr_home_identity(h, false, &id, NULL, &e), ==, TR_EINVAL);
    TR_CHECK(strstr(e.msg, "does not hold the public key"));
    tr_home_destroy(&h);
    cleanup();
}

TR_TEST(mkdir_refuses_foreign_directory)
{
    fresh_home();
    tr_err_t e = {0};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/a/b/c", tmp);
    TR_CHECK_INT(tr_home_mkdir(dir, &e), ==, TR_OK);
    struct stat st;
    TR_CHECK_INT(stat(dir, &st), ==, 0);
    TR_CHECK_INT(st.st_mode & 07777, ==, 0700);
    TR_CHECK_INT(tr_home_mkdir(dir, &e), ==, TR_OK); /* exists: fine */
    TR_CHECK_INT(tr_home_mkdir("relative", &e), ==, TR_EINVAL);
    if (geteuid() == 0) {
        TR_CHECK_INT(chown(dir, 12345, (gid_t)-1), ==, 0);
        TR_CHECK_INT(tr_home_mkdir(dir, &e), ==, TR_EPERM);
    }
    cleanup();
}

TR_MAIN()

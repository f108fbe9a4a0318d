/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "manager.h"

int main(int argc, char **argv) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Config config;
        int r;

        r = config_load(&config, argc, argv);
        if (r != 0) {
                config_done(&config);
                return r > 0 ? EXIT_APPLIED : EXIT_USAGE;
        }
        log_setup("nodetrustd", config.log_level);

        r = manager_new(&config, &m);
        if (r < 0) {
                config_done(&config);
                return EXIT_FAILURE_;
        }
        r = manager_run(m);
        m = manager_free(m);
        config_done(&config);
        return r;
}

/* loopback.h - a TCP listener on 127.0.0.1 at an ephemeral port, for the
 * unit tests that play a server the code under test connects to.
 *
 *   char ep[64];
 *   int lfd = loopback_listen(ep, sizeof ep);   ep = "tcp://127.0.0.1:PORT"
 */
#ifndef LOOPBACK_H
#define LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* Returns the listening socket and writes its endpoint, or -1. */
static inline int loopback_listen(char *endpoint, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    snprintf(endpoint, len, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

#endif

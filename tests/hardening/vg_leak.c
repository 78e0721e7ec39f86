/* Negative control for test_valgrind: loses one block on purpose (64 bytes, definitely lost), so
 * the test can show that its valgrind flags and its reading of the log catch a real leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *volatile p = malloc(64);
    if (!p)
        return 1;
    memset(p, 1, 64);
    printf("%d\n", p[63]);
    p = NULL; /* the only pointer is dropped: memcheck reports 64 bytes definitely lost */
    return 0;
}

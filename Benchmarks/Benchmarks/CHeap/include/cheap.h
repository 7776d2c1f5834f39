#include <stddef.h>
/* Bytes glibc's heap has handed out and not had back (mallinfo2: uordblks + hblkhd). */
size_t cheap_in_use(void);
/* malloc_trim(0). */
int cheap_trim(void);

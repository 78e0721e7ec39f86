/* The process-wide thread pool (pool.h). Implementation in progress. */
#include "pool.h"

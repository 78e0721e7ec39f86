/* Value checks of stored weights (values.h). Implementation in progress. */
#include "values.h"
#include "status.h"

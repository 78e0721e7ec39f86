/* Value checks of stored weights (implementation in progress). */
#ifndef LIBQUANT_VALUES_H
#define LIBQUANT_VALUES_H
#endif

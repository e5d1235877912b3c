#ifndef LOOPVK_CSHADERC_SHIM_H
#define LOOPVK_CSHADERC_SHIM_H
#include <shaderc/shaderc.h>
#endif

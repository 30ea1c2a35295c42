/* Layout probe for flamekit: prints, as one Python dict literal, the byte offsets an
 * out-of-process stack walker needs, measured with offsetof() against ONE interpreter's
 * own headers (compiled with Py_BUILD_CORE to reach the internal structs).
 *
 * Built and run by tools/gen_layouts.py once per installed interpreter and build flavour
 * (as released, and compiled as ./configure --with-pydebug would: -DPy_DEBUG); never
 * shipped. Keys are the field names of flamekit.record.layout.Layout. A key that does not
 * apply to a version is simply not printed. The "build_" keys say which flavour the
 * headers were compiled as (the macros in effect once Python.h is read: before 3.8,
 * Py_DEBUG brings Py_TRACE_REFS and its _ob_next/_ob_prev object header with it).
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <frameobject.h>
#if PY_VERSION_HEX < 0x030B0000
#  include <code.h>
#endif

#if PY_VERSION_HEX >= 0x03070000 && PY_VERSION_HEX < 0x03080000
#  include "internal/pystate.h"
#elif PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x03090000
#  include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX >= 0x03090000
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_interp.h"
#  include "internal/pycore_pystate.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#  include "internal/pycore_frame.h"
#  include "internal/pycore_code.h"
#endif

#define OUT(name, value) printf("    \"%s\": %ld,\n", name, (long)(value))
#define OFF(name, type, field) OUT(name, offsetof(type, field))

#if PY_MAJOR_VERSION >= 3
/* Position and width of a PEP 393 state bitfield, found by setting it to all ones in a
 * zeroed struct and looking at which bits of the 32-bit state word changed. */
static void unicode_state_bits(void)
{
    PyASCIIObject probe;
    uint32_t word;
    int shift, width;

#  define BITS(label, member)                                                        \
    memset(&probe, 0, sizeof probe);                                                 \
    probe.state.member = ~0u;                                                        \
    memcpy(&word, (char *)&probe + offsetof(PyASCIIObject, state), sizeof word);     \
    for (shift = 0; shift < 32 && !(word >> shift & 1); shift++) {}                  \
    for (width = 0; shift + width < 32 && (word >> (shift + width) & 1); width++) {} \
    OUT("unicode_" label "_shift", shift);                                           \
    OUT("unicode_" label "_width", width);

    BITS("kind", kind)
    BITS("compact", compact)
    BITS("ascii", ascii)
#  undef BITS
}
#endif

int main(void)
{
    printf("{\n");
    OUT("version_hex", PY_VERSION_HEX);
    OUT("pointer_size", sizeof(void *));
#ifdef Py_DEBUG
    OUT("build_debug", 1);
#else
    OUT("build_debug", 0);
#endif
#ifdef Py_TRACE_REFS
    OUT("build_trace_refs", 1);
#else
    OUT("build_trace_refs", 0);
#endif

    /* Objects */
    OFF("ob_type", PyObject, ob_type);
    OFF("ob_size", PyVarObject, ob_size);
    OFF("type_flags", PyTypeObject, tp_flags);
#if PY_MAJOR_VERSION >= 3
    OFF("bytes_data", PyBytesObject, ob_sval);
    OFF("unicode_length", PyASCIIObject, length);
    OFF("unicode_state", PyASCIIObject, state);
    OUT("unicode_ascii_size", sizeof(PyASCIIObject));
    OUT("unicode_compact_size", sizeof(PyCompactUnicodeObject));
    unicode_state_bits();
#else
    OFF("bytes_data", PyStringObject, ob_sval);
#endif

    /* Runtime (3.7+) */
#if PY_VERSION_HEX >= 0x03070000
    OFF("runtime_interpreters_head", _PyRuntimeState, interpreters.head);
#endif
#if PY_VERSION_HEX >= 0x03070000 && PY_VERSION_HEX < 0x030C0000
    OFF("runtime_gil_locked", _PyRuntimeState, ceval.gil.locked);
    OFF("runtime_gil_last_holder", _PyRuntimeState, ceval.gil.last_holder);
    OFF("runtime_tstate_current", _PyRuntimeState, gilstate.tstate_current);
#endif

    /* Interpreter */
    OFF("interp_next", PyInterpreterState, next);
#if PY_VERSION_HEX < 0x030B0000
    OFF("interp_threads_head", PyInterpreterState, tstate_head);
#else
    OFF("interp_threads_head", PyInterpreterState, threads.head);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    OFF("interp_ceval_gil", PyInterpreterState, ceval.gil);
    OFF("interp_gil_state", PyInterpreterState, _gil);
    OFF("gil_locked", struct _gil_runtime_state, locked);
    OFF("gil_last_holder", struct _gil_runtime_state, last_holder);
#endif

    /* Thread state */
    OFF("tstate_next", PyThreadState, next);
    OFF("tstate_interp", PyThreadState, interp);
    OFF("tstate_thread_id", PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x03070000
    OFF("tstate_unique_id", PyThreadState, id);
#endif
#if PY_VERSION_HEX < 0x030B0000
    OFF("tstate_frame", PyThreadState, frame);
#elif PY_VERSION_HEX < 0x030D0000
    OFF("tstate_cframe", PyThreadState, cframe);
    OFF("cframe_current_frame", _PyCFrame, current_frame);
    OFF("cframe_previous", _PyCFrame, previous);
#else
    OFF("tstate_current_frame", PyThreadState, current_frame);
#endif
#if PY_VERSION_HEX >= 0x030B0000
    OFF("tstate_native_thread_id", PyThreadState, native_thread_id);
    OFF("tstate_datastack_chunk", PyThreadState, datastack_chunk);
    OFF("tstate_datastack_top", PyThreadState, datastack_top);
    OFF("chunk_previous", _PyStackChunk, previous);
    OFF("chunk_size", _PyStackChunk, size);
    OFF("chunk_top", _PyStackChunk, top);
    OFF("chunk_data", _PyStackChunk, data);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    OFF("tstate_status", PyThreadState, _status);
#endif

    /* Frames */
#if PY_VERSION_HEX < 0x030B0000
    OFF("frame_back", PyFrameObject, f_back);
    OFF("frame_code", PyFrameObject, f_code);
    OFF("frame_instr", PyFrameObject, f_lasti);
#  if PY_VERSION_HEX >= 0x030A0000
    OFF("frame_running", PyFrameObject, f_state);
#  elif PY_VERSION_HEX >= 0x03000000
    OFF("frame_running", PyFrameObject, f_executing);
#  else
    /* 2.7 has no f_executing: f_stacktop is NULL while a frame runs, set when a
     * generator's frame yields (and before a frame starts). */
    OFF("frame_running", PyFrameObject, f_stacktop);
#  endif
#else
    OFF("frame_back", _PyInterpreterFrame, previous);
#  if PY_VERSION_HEX < 0x030D0000
    OFF("frame_code", _PyInterpreterFrame, f_code);
    OFF("frame_instr", _PyInterpreterFrame, prev_instr);
#  else
    OFF("frame_code", _PyInterpreterFrame, f_executable);
    OFF("frame_instr", _PyInterpreterFrame, instr_ptr);
#  endif
    OFF("frame_owner", _PyInterpreterFrame, owner);
    OFF("frame_size", _PyInterpreterFrame, localsplus);
#endif

    /* Code objects */
    OFF("code_firstlineno", PyCodeObject, co_firstlineno);
    OFF("code_filename", PyCodeObject, co_filename);
    OFF("code_name", PyCodeObject, co_name);
#if PY_VERSION_HEX >= 0x030B0000
    OFF("code_qualname", PyCodeObject, co_qualname);
    OFF("code_adaptive", PyCodeObject, co_code_adaptive);
#endif
#if PY_VERSION_HEX >= 0x030A0000
    OFF("code_linetable", PyCodeObject, co_linetable);
#else
    OFF("code_linetable", PyCodeObject, co_lnotab);
#endif
    printf("}\n");
    return 0;
}

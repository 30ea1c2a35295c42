/* Object probe for flamekit: prints, as one Python dict literal, the byte offsets
 * flamekit.record.objects needs to read CPython objects from outside the process: str
 * (PEP 393 on 3.x; str and unicode on 2.7), bytes, int, float, tuple, list, dict
 * internals, types (name, flags, instance dicts: tp_dictoffset, managed dicts, inline
 * values), modules and sys.modules (for the thread names, flamekit.record.threadnames).
 *
 * Measured with offsetof() (or by running the headers' own inline accessors, or setting
 * a bitfield, on a fake object) against ONE interpreter's headers, compiled with
 * Py_BUILD_CORE. Built and run by tools/gen_object_tables.py once per interpreter; never
 * shipped. A key that does not apply to a version is not printed.
 *
 * Two structs are private to Objects/*.c in older versions and so cannot be included:
 * PyModuleObject before 3.10 (md_dict is its first field after PyObject_HEAD) and
 * PyDictKeysObject in 3.6-3.10 (Objects/dict-common.h). For those the probe declares a
 * mirror of CPython's own definition and measures that.
 */
#define Py_BUILD_CORE 1
#define NDEBUG 1 /* the inline accessors assert on the (fake) object's type */
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#if PY_VERSION_HEX < 0x030B0000
#  include <longintrepr.h>
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
#if PY_VERSION_HEX >= 0x030A0000
#  include "internal/pycore_moduleobject.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#  include "internal/pycore_dict.h"
#  include "internal/pycore_object.h"
#endif
#if PY_VERSION_HEX >= 0x030C0000
#  include "internal/pycore_long.h"
#endif
#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>
#else
#  include "internal/pycore_code.h"
#  include "internal/pycore_frame.h"
#endif

#define OUT(name, value) printf("    \"%s\": %ld,\n", name, (long)(value))
#define OFF(name, type, field) OUT(name, offsetof(type, field))

#if PY_MAJOR_VERSION >= 3
/* The lowest set bit of the 32-bit word at `at`: where a bitfield set to 1 starts. */
static int low_bit(const void *at)
{
    uint32_t word;
    int bit = 0;
    memcpy(&word, at, sizeof word);
    if (!word)
        return -1;
    while (!(word & 1)) {
        word >>= 1;
        bit++;
    }
    return bit;
}

/* PEP 393's state bitfield: set one field of a zeroed header, see which bit moved. */
#  define STATE_SHIFT(name, field)                                                  \
    do {                                                                          \
        PyASCIIObject o;                                                          \
        memset(&o, 0, sizeof o);                                                  \
        o.state.field = 1;                                                        \
        OUT(name, low_bit((char *)&o + offsetof(PyASCIIObject, state)));          \
    } while (0)
#endif

#if PY_MAJOR_VERSION >= 3 && PY_VERSION_HEX < 0x030B0000
/* Objects/dict-common.h, 3.6-3.10 (dk_lookup's signature does not matter here). */
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} mirror_PyDictKeyEntry;
struct mirror_dictkeysobject {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[8];
};
#endif

#if PY_VERSION_HEX < 0x030A0000
/* Objects/moduleobject.c: PyObject_HEAD then md_dict. */
typedef struct {
    PyObject_HEAD
    PyObject *md_dict;
} mirror_PyModuleObject;
#endif

int main(void)
{
    printf("{\n");
    OUT("version_hex", PY_VERSION_HEX);

    /* Where sys.modules is kept. */
#if PY_VERSION_HEX >= 0x030C0000
    OFF("interp_modules", PyInterpreterState, imports.modules);
#else
    OFF("interp_modules", PyInterpreterState, modules);
#endif
#if PY_VERSION_HEX >= 0x030A0000
    OFF("module_dict", PyModuleObject, md_dict);
#else
    OFF("module_dict", mirror_PyModuleObject, md_dict);
#endif

    /* Every object: its type; variable-size objects: their item count. */
    OFF("ob_type", PyObject, ob_type);
    OFF("var_size", PyVarObject, ob_size);

    /* Types. */
    OFF("type_name", PyTypeObject, tp_name);
    OFF("type_basicsize", PyTypeObject, tp_basicsize);
    OFF("type_dictoffset", PyTypeObject, tp_dictoffset);
    OFF("type_flags", PyTypeObject, tp_flags);
    OUT("tpflags_heaptype", Py_TPFLAGS_HEAPTYPE);
#if PY_MAJOR_VERSION >= 3
    OFF("heap_cached_keys", PyHeapTypeObject, ht_cached_keys);
#endif
    /* "Fast subclass" bits: an instance of a subclass has its base's layout. */
    OUT("tpflags_long_subclass", Py_TPFLAGS_LONG_SUBCLASS);
    OUT("tpflags_list_subclass", Py_TPFLAGS_LIST_SUBCLASS);
    OUT("tpflags_tuple_subclass", Py_TPFLAGS_TUPLE_SUBCLASS);
    OUT("tpflags_unicode_subclass", Py_TPFLAGS_UNICODE_SUBCLASS);
    OUT("tpflags_dict_subclass", Py_TPFLAGS_DICT_SUBCLASS);
    OUT("tpflags_type_subclass", Py_TPFLAGS_TYPE_SUBCLASS);
#if PY_MAJOR_VERSION < 3
    OUT("tpflags_int_subclass", Py_TPFLAGS_INT_SUBCLASS);
    OUT("tpflags_bytes_subclass", Py_TPFLAGS_STRING_SUBCLASS); /* 2.7's str is bytes */
#else
    OUT("tpflags_bytes_subclass", Py_TPFLAGS_BYTES_SUBCLASS);
#endif

    /* Strings. 2.7: str (bytes) and unicode (Py_UNICODE, 2 or 4 bytes a character). */
#if PY_MAJOR_VERSION < 3
    OFF("bytes_data", PyStringObject, ob_sval);
    OFF("py2_unicode_length", PyUnicodeObject, length);
    OFF("py2_unicode_str", PyUnicodeObject, str);
    OFF("py2_unicode_hash", PyUnicodeObject, hash);
    OUT("py2_unicode_char_size", sizeof(Py_UNICODE));
#else
    OFF("bytes_data", PyBytesObject, ob_sval);
    /* PEP 393: compact ASCII data after PyASCIIObject, other compact data after
     * PyCompactUnicodeObject, a legacy (non-compact: str subclass) string's behind a
     * pointer. */
    OFF("unicode_length", PyASCIIObject, length);
    OFF("unicode_state", PyASCIIObject, state);
    OUT("unicode_ascii_size", sizeof(PyASCIIObject));
    OUT("unicode_compact_size", sizeof(PyCompactUnicodeObject));
    OFF("unicode_data", PyUnicodeObject, data);
    STATE_SHIFT("unicode_kind_shift", kind);
    STATE_SHIFT("unicode_compact_shift", compact);
    STATE_SHIFT("unicode_ascii_shift", ascii);
#endif

    /* Sequences and floats. */
    OFF("tuple_items", PyTupleObject, ob_item);
    OFF("list_items", PyListObject, ob_item);
    OFF("float_value", PyFloatObject, ob_fval);

    /* Dicts. */
    OFF("dict_used", PyDictObject, ma_used);
#if PY_MAJOR_VERSION < 3
    /* 2.7: one open-addressing table of (hash, key, value) entries, mask + 1 slots. */
    OFF("dict_mask", PyDictObject, ma_mask);
    OFF("dict_table", PyDictObject, ma_table);
    OUT("entry_size", sizeof(PyDictEntry));
    OFF("entry_hash", PyDictEntry, me_hash);
    OFF("entry_key", PyDictEntry, me_key);
    OFF("entry_value", PyDictEntry, me_value);
#else
    OFF("dict_keys", PyDictObject, ma_keys);
    OFF("dict_values", PyDictObject, ma_values);
#  if PY_VERSION_HEX < 0x030B0000
    OFF("keys_size", struct mirror_dictkeysobject, dk_size);
    OFF("keys_nentries", struct mirror_dictkeysobject, dk_nentries);
    OFF("keys_indices", struct mirror_dictkeysobject, dk_indices);
    OUT("entry_size", sizeof(mirror_PyDictKeyEntry));
    OFF("entry_hash", mirror_PyDictKeyEntry, me_hash);
    OFF("entry_key", mirror_PyDictKeyEntry, me_key);
    OFF("entry_value", mirror_PyDictKeyEntry, me_value);
    OUT("values_array", 0); /* ma_values is a PyObject ** */
#  else
    OFF("keys_log2_size", PyDictKeysObject, dk_log2_size);
    OFF("keys_log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
    OFF("keys_kind", PyDictKeysObject, dk_kind);
    OFF("keys_nentries", PyDictKeysObject, dk_nentries);
    OFF("keys_indices", PyDictKeysObject, dk_indices);
    OUT("keys_kind_general", DICT_KEYS_GENERAL);
    OUT("entry_size", sizeof(PyDictKeyEntry));
    OFF("entry_hash", PyDictKeyEntry, me_hash);
    OFF("entry_key", PyDictKeyEntry, me_key);
    OFF("entry_value", PyDictKeyEntry, me_value);
    OUT("unicode_entry_size", sizeof(PyDictUnicodeEntry));
    OFF("unicode_entry_key", PyDictUnicodeEntry, me_key);
    OFF("unicode_entry_value", PyDictUnicodeEntry, me_value);
    OFF("values_array", PyDictValues, values);
#  endif
#  if PY_VERSION_HEX >= 0x030D0000
    OFF("values_valid", PyDictValues, valid);
#  endif
#endif

    /* Instance attributes kept before the object header (3.11+). */
#if PY_VERSION_HEX >= 0x030B0000
    {
        static char buf[256];
        PyObject *obj = (PyObject *)(buf + 128);
        OUT("tpflags_managed_dict", Py_TPFLAGS_MANAGED_DICT);
#  if PY_VERSION_HEX < 0x030C0000
        OUT("managed_dict", (char *)_PyObject_ManagedDictPointer(obj) - (char *)obj);
        OUT("managed_values", (char *)_PyObject_ValuesPointer(obj) - (char *)obj);
#  elif PY_VERSION_HEX < 0x030D0000
        /* One word: a dict pointer, or (odd) a values pointer minus the adjustment. */
        PyDictOrValues dv;
        OUT("managed_dict", (char *)_PyObject_DictOrValuesPointer(obj) - (char *)obj);
        dv.values = (char *)0x1001;
        OUT("managed_values_tag", _PyDictOrValues_IsValues(dv) ? 1 : 0);
        OUT("managed_values_adjust", (char *)_PyDictOrValues_GetValues(dv) - dv.values);
#  else
        static PyTypeObject fake_type;
        OUT("managed_dict", (char *)_PyObject_ManagedDictPointer(obj) - (char *)obj);
        OUT("tpflags_inline_values", Py_TPFLAGS_INLINE_VALUES);
        /* Inline values: at sizeof(PyObject) in 3.13 (only plain-object layouts get
         * them), at tp_basicsize from 3.14. Ask the accessor with two basic sizes. */
        {
            long at48, at64;
            obj->ob_type = &fake_type;
            fake_type.tp_basicsize = 48;
            at48 = (long)((char *)_PyObject_InlineValues(obj) - (char *)obj);
            fake_type.tp_basicsize = 64;
            at64 = (long)((char *)_PyObject_InlineValues(obj) - (char *)obj);
            if (at48 == 48 && at64 == 64)
                OUT("inline_values_at_basicsize", 1);
            else if (at48 == at64)
                OUT("inline_values_offset", at48);
        }
#  endif
    }
#endif

    /* Ints (thread idents are the keys of threading._active). */
#if PY_MAJOR_VERSION < 3
    OFF("int_value", PyIntObject, ob_ival);
#endif
    OUT("long_shift", PyLong_SHIFT);
    OUT("long_digit_size", sizeof(digit));
#if PY_VERSION_HEX >= 0x030C0000
    OFF("long_tag", PyLongObject, long_value.lv_tag);
    OFF("long_digits", PyLongObject, long_value.ob_digit);
    OUT("long_non_size_bits", NON_SIZE_BITS);
    OUT("long_sign_mask", SIGN_MASK);
    OUT("long_sign_negative", SIGN_NEGATIVE);
#else
    OFF("long_size", PyVarObject, ob_size);
    OFF("long_digits", PyLongObject, ob_digit);
#endif

    /* Sets (and frozensets): an open-addressing table of (key, hash), mask + 1 slots. */
    OFF("set_used", PySetObject, used);
    OFF("set_mask", PySetObject, mask);
    OFF("set_table", PySetObject, table);
    OUT("set_entry_size", sizeof(setentry));
    OFF("set_entry_key", setentry, key);
    OFF("set_entry_hash", setentry, hash);

    /* Cells: a closure's variable, behind one pointer. */
    OFF("cell_ref", PyCellObject, ob_ref);

    /* Frames' local variables (flamekit dump --locals): the fast locals array of a
     * frame and the names and kinds its code object gives them. */
    OFF("code_argcount", PyCodeObject, co_argcount);
#if PY_MAJOR_VERSION >= 3
    OFF("code_kwonlyargcount", PyCodeObject, co_kwonlyargcount);
#endif
    OFF("code_flags", PyCodeObject, co_flags);
    OUT("co_varargs", CO_VARARGS);
    OUT("co_varkeywords", CO_VARKEYWORDS);
#if PY_VERSION_HEX < 0x030B0000
    /* 3.10 and older: locals, then cells, then free variables, named by three tuples. */
    OFF("code_varnames", PyCodeObject, co_varnames);
    OFF("code_cellvars", PyCodeObject, co_cellvars);
    OFF("code_freevars", PyCodeObject, co_freevars);
    OFF("frame_localsplus", PyFrameObject, f_localsplus);
#else
    /* 3.11+: one array in the interpreter frame, one names tuple, one kinds bytes. */
    OFF("code_localsplusnames", PyCodeObject, co_localsplusnames);
    OFF("code_localspluskinds", PyCodeObject, co_localspluskinds);
    OFF("frame_localsplus", _PyInterpreterFrame, localsplus);
    OUT("fast_local", CO_FAST_LOCAL);
    OUT("fast_cell", CO_FAST_CELL);
    OUT("fast_free", CO_FAST_FREE);
#endif
    printf("}\n");
    return 0;
}

/* A test-only C extension: spin_in_c(callback, seconds) burns CPU in a named C function
   and calls back into Python every so often, so a native stack reads
   Python caller -> spin_in_c (C) -> callback (Python). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static double flamekit_spin_leaf(long n) {
    volatile double x = 0;
    for (long i = 0; i < n; i++) x += i * 0.5;
    return x;
}

/* Spin for `seconds`, calling `callback()` after every burst of C work. */
__attribute__((noinline)) static PyObject *flamekit_spin_in_c(PyObject *self, PyObject *args) {
    PyObject *callback;
    double seconds;
    if (!PyArg_ParseTuple(args, "Od", &callback, &seconds)) return NULL;
    double end = now() + seconds;
    unsigned long rnd = 88172645463325252UL;
    while (now() < end) {
        /* bursts of random length (xorshift), so no sampling rate beats in step with them */
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        flamekit_spin_leaf(20000 + (long)(rnd % 200000));
        PyObject *r = PyObject_CallObject(callback, NULL);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"spin_in_c", flamekit_spin_in_c, METH_VARARGS, "spin in C, calling back"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "spinext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_spinext(void) { return PyModule_Create(&module); }

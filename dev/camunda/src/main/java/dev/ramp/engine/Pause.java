package dev.ramp.engine;

import org.springframework.stereotype.Component;

/**
 * For tests of timings a fast engine never shows: a service task with
 * {@code camunda:expression="${pause.millis(3000)}"} holds its transaction open for
 * that long, so a call that reached the engine commits after its caller gave up.
 */
@Component("pause")
public class Pause {
    public void millis(long millis) throws InterruptedException {
        Thread.sleep(millis);
    }
}
